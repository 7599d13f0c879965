"""Frames -> model input: face box, crop, optical flow, strain, resize, normalisation (see pipeline.py)."""

from epir_core.preprocess.apex import max_flow_apex
from epir_core.preprocess.face import Face, FaceBox, FaceLocator, crop_face
from epir_core.preprocess.flow import compute_flow, cuda_available, flow_backend
from epir_core.preprocess.pipeline import crop_matrix, crop_pair, flow_to_input, make_model_input, to_grey
from epir_core.preprocess.recipe import DISParams, FarnebackParams, InputRecipe, TVL1Params
from epir_core.preprocess.strain import optical_strain

__all__ = [
    "DISParams", "Face", "FaceBox", "FaceLocator", "FarnebackParams", "InputRecipe", "TVL1Params", "compute_flow",
    "crop_face", "crop_matrix", "crop_pair", "cuda_available", "flow_backend", "flow_to_input", "make_model_input",
    "max_flow_apex", "optical_strain", "to_grey",
]
