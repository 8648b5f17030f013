"""Data shipped with spp_viz: sample photos, the distilled SPP head, the shipped results (read via spp_viz.settings)."""
