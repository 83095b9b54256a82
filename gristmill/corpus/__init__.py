"""gristmill.corpus"""
