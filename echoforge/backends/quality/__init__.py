"""How speech sounds and who speaks: DNSMOS scores and speaker embeddings of a clip."""
