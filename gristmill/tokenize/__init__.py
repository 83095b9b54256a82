"""gristmill.tokenize"""
