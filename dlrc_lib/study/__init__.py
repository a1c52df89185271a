"""The study: its vocabulary (:mod:`.schema`), manifests (:mod:`.manifest`), validation (:mod:`.validate`) and views (:mod:`.views`)."""
