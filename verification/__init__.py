"""The verification lane: real upstream model code on CPU, random weights, synthetic data (docs/testing.md).

Never imported by ``onlinemap``; run through ``scripts/verify-real-models.sh``.
"""
