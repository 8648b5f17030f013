"""Detection as the paper does it (Sec. 4): windows, SPP-net and R-CNN modes, the trained detector, its evaluation."""
