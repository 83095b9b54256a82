"""gristmill.train"""
