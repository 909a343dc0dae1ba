"""Built-in search methods, each in its own module, using only the public API a submitter uses.

They register through the ``harness.methods`` entry-point group, exactly as third-party methods do.
"""
