# Expected values of the cross-validated LASSO (tests/test_lasso_glmnet.py), from R cv.glmnet.
#   python tests/lassodata.py /tmp/lassodata && Rscript tests/r/glmnet_cv.R /tmp/lassodata > tests/data/glmnet_cv.json
# For each data set: the path of cv.glmnet(thresh = 1e-20) and, to show how far R's own answer
# is converged, the change of cvm and cvsd from thresh = 1e-14 to 1e-20 at each lambda.
suppressMessages(library(glmnet))
dir <- commandArgs(trailingOnly = TRUE)[1]
num <- function(v) paste0("[", paste(sprintf("%.17g", v), collapse = ", "), "]")
coefs <- function(cv, s) {
  b <- as.matrix(coef(cv, s = s))
  paste0("{", paste(sprintf("\"%s\": %.17g", rownames(b), b[, 1]), collapse = ", "), "}")
}
out <- c()
for (name in c("correlated", "wide", "unbalanced")) {
  d <- read.csv(file.path(dir, paste0(name, ".csv")))
  x <- as.matrix(d[, grep("^x", names(d))]); y <- d$y; foldid <- d$foldid
  cv <- cv.glmnet(x, y, family = "binomial", type.measure = "deviance", foldid = foldid,
                  thresh = 1e-14, maxit = 1e7)
  cv2 <- cv.glmnet(x, y, family = "binomial", type.measure = "deviance", foldid = foldid,
                   thresh = 1e-20, maxit = 1e7)
  k <- min(length(cv$lambda), length(cv2$lambda))
  out <- c(out, sprintf(paste0(
    "\"%s\": {\"lambda\": %s, \"cvm\": %s, \"cvsd\": %s, \"nzero\": %s, \"lambda_min\": %.17g, ",
    "\"lambda_1se\": %.17g, \"coef_1se\": %s, \"coef_min\": %s, \"r_cvm_change\": %s, \"r_cvsd_change\": %s}"),
    name, num(cv2$lambda), num(cv2$cvm), num(cv2$cvsd), num(cv2$nzero), cv2$lambda.min, cv2$lambda.1se,
    coefs(cv2, "lambda.1se"), coefs(cv2, "lambda.min"),
    num(abs(cv$cvm[1:k] - cv2$cvm[1:k])), num(abs(cv$cvsd[1:k] - cv2$cvsd[1:k]))))
}
cat(sprintf("{\"R\": \"%s\", \"glmnet\": \"%s\",\n", R.version.string, packageVersion("glmnet")))
cat(paste(out, collapse = ",\n"), "}\n")
