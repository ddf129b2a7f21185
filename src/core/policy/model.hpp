// core/policy: the policy model, i.e. the vendor's "network security" page as data.
// A Policy is immutable once loaded; gateways share it as std::shared_ptr<const Policy>.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/config/diagnostic.hpp"
#include "core/policy/host_pattern.hpp"

namespace moat::core::policy {

using config::Location;

struct ChangelogEntry {
  std::uint64_t revision = 0;
  std::string date;  // YYYY-MM-DD
  std::vector<std::string> changes;
  Location where;
};

struct Metadata {
  std::string publisher;
  std::string name;  // short id, unique among loaded policies: "salestim"
  std::string title;
  std::string classification;  // public | internal | confidential
  std::string url;
  std::string contact;
  std::uint64_t revision = 0;  // only ever goes up
  std::string updated;         // YYYY-MM-DD of this revision
  std::vector<ChangelogEntry> changelog;
  Location revision_where;
};

// One numbered line of a flow's description on the page ("*.salestim.io for the main app").
// Descriptive: the matcher allows only what services list.
struct FlowDestination {
  std::vector<HostPattern> hosts;
  std::vector<Location> host_locations;  // parallel to hosts
  std::string purpose;
};

// A kind of traffic of the network diagram.
struct Flow {
  std::string id;
  std::string name;
  std::string description;
  std::string color;              // as drawn on the page's diagram
  bool customer_network = false;  // does it cross the customer's network (and proxy)?
  std::vector<FlowDestination> destinations;
  Location where;
};

// An RFC 7469 pin: base64 of the SHA-256 of a certificate's SubjectPublicKeyInfo.
struct Pin {
  std::string base64;
  std::array<std::uint8_t, 32> sha256{};
};

// A row of "Domains whitelisting".
struct Service {
  std::string id;  // unique within the policy
  std::string name;
  std::string flow;  // id of a Flow
  std::vector<HostPattern> hosts;
  std::vector<Location> host_locations;  // parallel to hosts
  std::vector<std::uint16_t> ports;      // default {443}
  std::string purpose;
  std::string more_info;  // URL
  bool required = true;
  std::vector<Pin> pins;
  Location where;
};

// The certificate table of the page, as published (moat cert verify compares live ones to it).
struct CertificateRecord {
  std::string id;
  std::string domain;
  std::string fingerprint_sha256;  // lowercase hex, 64 chars
  Pin pin;
  std::vector<std::string> common_names;
  std::vector<std::string> alternative_names;
  std::string serial;  // lowercase hex
  std::string key;     // "RSA 2048 bits (e 65537)"
  std::string issuer;
  std::string aia;
  std::string signature_algorithm;
  Location where;
};

struct Hsts {
  std::uint64_t max_age = 63072000;  // two years (Mozilla guideline)
  bool include_subdomains = true;
  bool preload = false;
};

struct TlsSettings {
  std::string min_version = "1.2";  // "1.2" | "1.3"
  Hsts hsts;
};

struct Ddos {
  std::string provider;
  std::string description;
  std::string url;
};

struct Policy {
  std::string file;  // where it was loaded from
  Metadata metadata;
  std::vector<Flow> flows;
  std::vector<Service> services;
  std::vector<CertificateRecord> certificates;
  TlsSettings tls;
  Ddos ddos;
};

}  // namespace moat::core::policy
