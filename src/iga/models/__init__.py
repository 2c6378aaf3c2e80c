"""iga.models"""
