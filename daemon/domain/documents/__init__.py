"""Memory: documents (every kind of text agents and people leave, one table, one full-text
index), their search, instructions read from the projects themselves, code chunks and
embeddings."""
