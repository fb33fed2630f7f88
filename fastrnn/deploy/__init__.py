"""Deployment: a layer's weights packed once for inference (FrozenLayer), one-step streams
(Stepper) and safe save and load (.npz, no pickle).

Import the public names from ``fastrnn``; Dask scale-out is ``fastrnn.dask``.
"""
