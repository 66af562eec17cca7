"""Evaluation: metrics (:mod:`.metrics`), peers (:mod:`.peers`), suites (:mod:`.suites`) and reports
(:mod:`.report`), run by ``facerecon eval``."""
