"""iga.experiments"""
