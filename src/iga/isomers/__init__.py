"""iga.isomers"""
