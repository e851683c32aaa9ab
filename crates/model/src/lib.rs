//! The API Gateway resource model.
