"""Typed, versioned readers for gristmill's on-disk formats: one reader and validator per format."""
