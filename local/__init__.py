"""The local stack: an embedded AWS emulator plus the real handlers, fed as AWS would feed them.

Everything is read from template.yaml: the table, the functions, their
environment and their triggers.
"""
