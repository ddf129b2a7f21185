namespace moat::cert {}
