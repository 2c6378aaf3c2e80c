"""iga.algorithms"""
