"""`mip`: the paper's behaviour-cloning baseline, MIP regressing relative robot action chunks directly."""
