"""Stage 1 of GLAM: the latent-action world model, its training, relabelling and transfer.

modules.py   building blocks shared with the CLAM / LAPA baselines
glam.py      the GLAM model and its loss (Eq. 3-6, Appendix E)
frames.py    the decoded-frame cache (every video decoded once per dataset revision)
data.py      transitions (t, t+1) of a mixture, batched from the cache
train.py     the training loop (accelerate), checkpoint.py: safetensors + config.json
relabel.py   latent actions as new dataset revisions + the merged mixture dataset
transfer.py  cross-source transfer replayed on the simulated Kinova; plots.py: curves and latent projections
"""
