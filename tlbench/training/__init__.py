"""Training: the one loop, data plumbing, model assembly, stages, augmentation, speed, checkpoint selection."""
