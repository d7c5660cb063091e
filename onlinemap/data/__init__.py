"""Datasets: the synthetic nuScenes-format dataset and checks of a real dataroot."""
