"""iga.evaluation"""
