"""Registration of frames from a fixed, vibrating camera: methods (numpy, no Ray) and the pipeline."""
