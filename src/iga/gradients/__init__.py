"""iga.gradients"""
