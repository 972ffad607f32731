"""Image-to-image models: U-Net super-resolution, pix2pix and CycleGAN."""
