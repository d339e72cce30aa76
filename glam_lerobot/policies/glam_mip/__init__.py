"""`glam_mip`: MIP over chunks of GLAM latent actions plus an action decoder, trained with GLAM Eq. 8."""
