"""iga.teachers"""
