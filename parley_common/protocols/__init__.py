"""Wire formats shared by the agent's uplink and the gateway: USP framing and the streaming WAV header."""
