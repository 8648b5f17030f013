"""Figures, one module per concept of the paper: plotly figures and PIL pictures, with no Streamlit in sight.

base (shared building blocks), exports (PNG / .npy bytes), maps, pyramid, views, activations, detection, lab.
"""
