"""fidelity"""
