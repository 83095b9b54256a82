"""gristmill.pipelines"""
