"""The SPP Lab: small SPP-nets and fixed-size baselines trained here, and the paper's comparisons re-run on them."""
