"""Sampling this host: platform readers over psutil and the source that ticks them."""
