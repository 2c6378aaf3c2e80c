"""iga.integrations"""
