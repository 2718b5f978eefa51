"""restore's thin Triton client: decode a video, stream its frames through a served restoration
task, re-order the responses and write a faithful output file. No torch, no training code: tensor
names, window length and scale come from the server."""
