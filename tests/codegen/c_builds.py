"""The runtime builds every bit-exactness test of the C kernels runs in (compiler flags)."""

# NN_MAX_ROW=4: rows split in chunks, fused pools one conv pixel at a time; NN_COL_BUF=1: no
# tiled convolution (the row kernels); NN_COL_BUF=150 / NN_POOL_BUF=600: small odd tiles and
# channel chunks (every remainder of the 4 x 2 register tiles and of the pooled row slots)
C_BUILD_FLAGS: dict[str, tuple[str, ...]] = {
    "default": (),
    "narrow_rows": ("-DNN_MAX_ROW=4",),
    "untiled": ("-DNN_COL_BUF=1",),
    "small_tiles": ("-DNN_COL_BUF=150", "-DNN_POOL_BUF=600"),
}
