"""Colouring with a saved InstructPix2Pix pipeline, for 04's validation images, 05 and the demo: loading, samplers
and batched generation (``pipeline``), and a small UNet on onnxruntime (``onnx_unet``).
"""
