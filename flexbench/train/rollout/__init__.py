"""Rollouts: sampling G completions per prompt and crediting them (``sampler``), and the
generation engines with their weight sync (``engines``)."""
