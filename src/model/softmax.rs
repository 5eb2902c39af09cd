//! Multinomial logistic (softmax) regression.
