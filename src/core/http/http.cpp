namespace moat::core::http {}
