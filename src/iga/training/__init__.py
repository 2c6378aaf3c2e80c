"""iga.training"""
