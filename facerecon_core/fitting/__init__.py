"""Fitting the face model to photos: landmarks first, then a masked photometric term."""

from facerecon_core.fitting.fitter import FitConfig, Fitter, FitResult

__all__ = ["FitConfig", "Fitter", "FitResult"]
