"""The message format: suites, header, frames, keyrings and the message reader and writer.

Nothing here imports the stack: the stack composes these pieces.
"""
