"""Statistics with the conventions of the R functions the study used (R 4.2).

Each function names the R call whose numbers it reproduces. The implementations are
vectorised where the pipeline applies them to thousands of features at once
(:func:`mann_whitney_pvalues`, :func:`icc_many`).

=========================  ==============================================================
function                   R reference
=========================  ==============================================================
auc_ci                     ``pROC::ci.auc(roc(y, s, direction="<"), method="delong")``
delong_test                ``pROC::roc.test(r1, r2, method="delong", paired=TRUE)``
youden_threshold           ``pROC::coords(r, "best", best.method="youden")``
classification_metrics     counts + Wilson intervals (``prop.test(x, n, correct=FALSE)``)
hosmer_lemeshow            ``ResourceSelection::hoslem.test(y, p, g=10)``
calibration_curve          ``rms::val.prob(p, y)`` (Intercept, Slope, Brier, C, Dxy)
net_benefit                ``dcurves::dca`` (net benefit, treat all, treat none)
icc / icc_many             ``psych::ICC`` rows ICC2 (single random raters) / ICC3
                           (default lmer=TRUE; ``estimator="anova"``: lmer=FALSE)
mann_whitney_pvalues       ``wilcox.test(x1, x0, exact=FALSE, correct=TRUE)$p.value``
logistic_glm               ``glm(y ~ ., family=binomial)`` (same IRLS, start and stopping); its
                           result reads like statsmodels' (params, bse, pvalues, conf_int())
wald_table                 ``summary(glm)$coefficients``, ``confint.default``, odds ratios
backward_aic               ``MASS::stepAIC(glm(y ~ ., binomial), direction="backward")``
lasso_cv                   ``glmnet::cv.glmnet(x, y, family="binomial", type.measure="deviance")``
                           (each fold on its own lambda sequence, interpolated: ``lambda.interp``)
compare_categorical        compareGroups: ``fisher.test`` if any expected < 5, else
                           ``chisq.test`` (Yates on 2x2)
compare_continuous         compareGroups (two groups): ``t.test(var.equal=TRUE)`` (Student) or
                           ``kruskal.test``; normality by ``shapiro.test``
quantile7                  ``quantile(x, type=7)``
cohen_kappa                ``psych::cohen.kappa`` (unweighted kappa, its variance and bounds)
validation_sample_size     Python ``pmvalsampsize(type="b", ...)`` 0.2.1 (R ``pmvalsampsize``): minimum
                           N to validate a model externally (O/E, slope, C, net benefit)
=========================  ==============================================================

The functions live in one module per family (:mod:`.roc`, :mod:`.classification`,
:mod:`.calibration`, :mod:`.icc`, :mod:`.nonparametric`, :mod:`.glm`, :mod:`.lasso`, :mod:`.contingency`, :mod:`.agreement`,
:mod:`.samplesize`);
this package re-exports them as its public interface.
"""
from __future__ import annotations

from dlrc_lib.stats._base import format_p, quantile7
from dlrc_lib.stats.agreement import KappaResult, cohen_kappa
from dlrc_lib.stats.calibration import (
                                        CalibrationResult,
                                        HosmerLemeshow,
                                        calibration_curve,
                                        hosmer_lemeshow,
                                        net_benefit,
)
from dlrc_lib.stats.classification import (
                                        ClassificationMetrics,
                                        Proportion,
                                        classification_metrics,
                                        metrics_from_counts,
                                        wilson_ci,
)
from dlrc_lib.stats.contingency import (
                                        TestResult,
                                        chisq_test,
                                        compare_categorical,
                                        compare_continuous,
                                        fisher_exact,
)
from dlrc_lib.stats.glm import GlmFit, StepAicResult, backward_aic, logistic_glm, wald_table
from dlrc_lib.stats.lasso import LassoCVResult, lambda_interp, lasso_cv
from dlrc_lib.stats.icc import IccResult, icc, icc_many
from dlrc_lib.stats.nonparametric import mann_whitney_pvalues
from dlrc_lib.stats.roc import (
                                        AucCI,
                                        DelongResult,
                                        YoudenPoint,
                                        auc,
                                        auc_ci,
                                        delong_test,
                                        youden_point,
                                        youden_threshold,
)
from dlrc_lib.stats.samplesize import SampleSizeCriterion, ValidationSampleSize, validation_sample_size

__all__ = [
    "AucCI", "DelongResult", "YoudenPoint", "Proportion", "ClassificationMetrics",
    "HosmerLemeshow", "CalibrationResult", "IccResult", "GlmFit", "StepAicResult",
    "TestResult", "auc", "auc_ci", "delong_test", "youden_threshold", "youden_point",
    "classification_metrics", "metrics_from_counts", "wilson_ci", "hosmer_lemeshow",
    "calibration_curve", "net_benefit", "icc", "icc_many", "mann_whitney_pvalues",
    "logistic_glm", "backward_aic", "compare_categorical", "compare_continuous",
    "fisher_exact", "chisq_test", "quantile7", "format_p", "KappaResult", "cohen_kappa",
    "LassoCVResult", "lasso_cv", "lambda_interp", "wald_table", "SampleSizeCriterion",
    "ValidationSampleSize", "validation_sample_size",
]
