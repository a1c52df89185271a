"""Infrastructure every layer may use: errors, parameters, atomic writes, the memo cache, progress bars."""
