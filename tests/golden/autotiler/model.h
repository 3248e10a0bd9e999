#ifndef MODEL_H_
#define MODEL_H_

/* Output quantization of graph 'cifar_net' (SQ8.md section 8):
 * real = (q - ZERO_POINT) * SCALE, SCALE ~= QSCALE * 2^-QNORM (7-bit QSCALE). */
// Input_1
#define CIFAR_NET_Input_1_OUT_SCALE	0.007874015748031496
#define CIFAR_NET_Input_1_OUT_QSCALE	65
#define CIFAR_NET_Input_1_OUT_QNORM	13
#define CIFAR_NET_Input_1_OUT_ZERO_POINT	0
// S3_Conv2d_6x3x5x5_MaxPool_2x2_Relu
#define CIFAR_NET_S3_Conv2d_6x3x5x5_MaxPool_2x2_Relu_OUT_SCALE	0.062369739308076745
#define CIFAR_NET_S3_Conv2d_6x3x5x5_MaxPool_2x2_Relu_OUT_QSCALE	64
#define CIFAR_NET_S3_Conv2d_6x3x5x5_MaxPool_2x2_Relu_OUT_QNORM	10
#define CIFAR_NET_S3_Conv2d_6x3x5x5_MaxPool_2x2_Relu_OUT_ZERO_POINT	-128
// S6_Conv2d_16x6x5x5_MaxPool_2x2_Relu
#define CIFAR_NET_S6_Conv2d_16x6x5x5_MaxPool_2x2_Relu_OUT_SCALE	0.14439926147460938
#define CIFAR_NET_S6_Conv2d_16x6x5x5_MaxPool_2x2_Relu_OUT_QSCALE	74
#define CIFAR_NET_S6_Conv2d_16x6x5x5_MaxPool_2x2_Relu_OUT_QNORM	9
#define CIFAR_NET_S6_Conv2d_16x6x5x5_MaxPool_2x2_Relu_OUT_ZERO_POINT	-128
// S9_Op__fc1_Gemm_fusion
#define CIFAR_NET_S9_Op__fc1_Gemm_fusion_OUT_SCALE	0.2605542351217831
#define CIFAR_NET_S9_Op__fc1_Gemm_fusion_OUT_QSCALE	67
#define CIFAR_NET_S9_Op__fc1_Gemm_fusion_OUT_QNORM	8
#define CIFAR_NET_S9_Op__fc1_Gemm_fusion_OUT_ZERO_POINT	-128
// S12_Op__fc2_Gemm_fusion
#define CIFAR_NET_S12_Op__fc2_Gemm_fusion_OUT_SCALE	0.3022965075922947
#define CIFAR_NET_S12_Op__fc2_Gemm_fusion_OUT_QSCALE	77
#define CIFAR_NET_S12_Op__fc2_Gemm_fusion_OUT_QNORM	8
#define CIFAR_NET_S12_Op__fc2_Gemm_fusion_OUT_ZERO_POINT	-128
// S15_Linear_10x84
#define CIFAR_NET_S15_Linear_10x84_OUT_SCALE	0.9603312015533447
#define CIFAR_NET_S15_Linear_10x84_OUT_QSCALE	123
#define CIFAR_NET_S15_Linear_10x84_OUT_QNORM	7
#define CIFAR_NET_S15_Linear_10x84_OUT_ZERO_POINT	0

#endif /* MODEL_H_ */
