package host

import (
	"fmt"
	"slices"

	"github.com/storage-host/storage-host/abi"
)

// The rules of abi/README.md a plugin's metadata can be checked against
// at load. Each refusal is ErrIncompatible and names the rule it breaks;
// the rules that cannot be checked at load are listed in SECURITY.md with
// the reason.

// maxMetadataName bounds the plugin's name and version, which the host
// writes into logs, metrics labels and `plugin inspect`.
const maxMetadataName = 64

// knownFeatureBits are the feature bits ABI 1.8 defines (section 9).
const knownFeatureBits = uint32(abi.FeatureMetrics | abi.FeatureAlerts | abi.FeatureAgentStates | abi.FeatureQuery |
	abi.FeatureBatch | abi.FeatureTTL | abi.FeatureConcurrency | abi.FeatureRestore | abi.FeatureTick | abi.FeatureWriteEvents)

// sinceMinor is the ABI 1.x minor that added each capability and feature
// a plugin may declare; a plugin that declares one MUST declare at least
// that minor (section 2).
var (
	capabilitySince = map[abi.Capability]uint16{abi.CapabilityRedis: 1, abi.CapabilityEvents: 2, abi.CapabilityRedisScripts: 4, abi.CapabilityPostgres: 5}
	featureSince    = []struct {
		f     abi.Feature
		minor uint16
	}{{abi.FeatureRestore, 2}, {abi.FeatureTick, 3}, {abi.FeatureWriteEvents, 6}}
)

// checkMetadata checks m, as decoded (with its feature bits as sent in
// rawFeatures, before the decoder masked them), against the version the
// plugin's storage_abi_version export returned.
func checkMetadata(m *abi.Metadata, exported abi.Version, rawFeatures uint32) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: metadata: %s", ErrIncompatible, fmt.Sprintf(format, args...))
	}
	if m.ABI != exported {
		return bad("ABI version %s differs from the %s storage_abi_version returns (section 2: the two MUST be equal)", m.ABI, exported)
	}
	if !validPluginName(m.Name) {
		return bad("name %q is not 1 to %d bytes of [a-z0-9_-] (the form of a backend name, which it becomes when the configuration names none)", cutText(m.Name, 4*maxMetadataName), maxMetadataName)
	}
	if !validPluginVersion(m.Version) {
		return bad("version %q is not 1 to %d bytes of [A-Za-z0-9._+-]", cutText(m.Version, 4*maxMetadataName), maxMetadataName)
	}
	if extra := rawFeatures &^ knownFeatureBits; extra != 0 {
		return bad("features %#x set bits ABI %s does not define (section 9: a plugin MUST NOT set them)", extra, m.ABI)
	}
	for _, fs := range featureSince {
		if m.Features.Has(fs.f) && m.ABI.Minor < fs.minor {
			return bad("feature %s needs ABI 1.%d, but the plugin declares ABI %s (section 2: a plugin that uses an addition of a minor MUST declare at least that minor)", fs.f, fs.minor, m.ABI)
		}
	}
	if m.Features.Has(abi.FeatureWriteEvents) && !slices.Contains(m.Capabilities, abi.CapabilityPostgres) {
		return bad("feature write_events needs the postgres capability (section 16.6: the events go into the backend's PostgreSQL table)")
	}
	for i, c := range m.Capabilities {
		if !knownCapability(c) {
			return bad("capability %q is not one this host provides (section 6)", c)
		}
		if slices.Contains(m.Capabilities[:i], c) {
			return bad("capability %q is declared twice", c)
		}
		if minor, ok := capabilitySince[c]; ok && m.ABI.Minor < minor {
			return bad("capability %s needs ABI 1.%d, but the plugin declares ABI %s (section 2: a plugin that uses an addition of a minor MUST declare at least that minor)", c, minor, m.ABI)
		}
	}
	if why := kvReadsFault(m); why != "" {
		return bad("kv reads: %s (section 10.9)", why)
	}
	if why := redisReadsFault(m); why != "" {
		return bad("redis reads: %s (section 10.9)", why)
	}
	if why := pgReadsFault(m); why != "" {
		return bad("postgres reads: %s (section 10.9)", why)
	}
	return nil
}

// maxMetadataBytes bounds a plugin's encoded Metadata: the largest valid
// one (sixteen capabilities, two postgres reads of maxPGReadSQL bytes) is
// under 9 KiB.
const maxMetadataBytes = 64 << 10

// maxKVReadPrefix bounds a kv read's key prefix, and a redis read's key
// prefix, suffix and guard: each is a plugin's key layout ("s\x00"), not
// data.
const maxKVReadPrefix = 64

// kvReadsFault says what is wrong with m's kv reads, or "".
func kvReadsFault(m *abi.Metadata) string {
	if len(m.KVReads) == 0 {
		return ""
	}
	if !slices.Contains(m.Capabilities, abi.CapabilityKV) {
		return "they need the kv capability, which the plugin does not declare"
	}
	for i, r := range m.KVReads {
		switch {
		case r.Kind != abi.KindAlert && r.Kind != abi.KindAgentState:
			return fmt.Sprintf("kind %d is not one a kv read serves (2, alerts, or 3, agent states)", r.Kind)
		case !m.Features.Has(r.Kind.Feature()):
			return fmt.Sprintf("%s are declared but the plugin does not advertise the feature %s", r.Kind.Name(), r.Kind.Feature())
		case len(r.Prefix) > maxKVReadPrefix:
			return fmt.Sprintf("the prefix of %s is %d bytes, over %d", r.Kind.Name(), len(r.Prefix), maxKVReadPrefix)
		}
		for _, before := range m.KVReads[:i] {
			if before.Kind == r.Kind {
				return fmt.Sprintf("%s are declared twice", r.Kind.Name())
			}
		}
	}
	return ""
}

// redisReadsFault says what is wrong with m's redis reads, or "".
func redisReadsFault(m *abi.Metadata) string {
	if len(m.RedisReads) == 0 {
		return ""
	}
	if !slices.Contains(m.Capabilities, abi.CapabilityRedis) {
		return "they need the redis capability, which the plugin does not declare"
	}
	for i, r := range m.RedisReads {
		switch {
		case r.Kind != abi.KindAlert && r.Kind != abi.KindAgentState:
			return fmt.Sprintf("kind %d is not one a redis read serves (2, alerts, or 3, agent states)", r.Kind)
		case !m.Features.Has(r.Kind.Feature()):
			return fmt.Sprintf("%s are declared but the plugin does not advertise the feature %s", r.Kind.Name(), r.Kind.Feature())
		case len(r.KeyPrefix) > maxKVReadPrefix, len(r.KeySuffix) > maxKVReadPrefix, len(r.Guard) > maxKVReadPrefix:
			return fmt.Sprintf("the key prefix, key suffix or guard of %s is over %d bytes", r.Kind.Name(), maxKVReadPrefix)
		case len(r.Guard) > 0 && !slices.Contains(m.Capabilities, abi.CapabilityKV):
			return fmt.Sprintf("the guard of %s is a kv prefix, but the plugin does not declare the kv capability", r.Kind.Name())
		}
		for _, before := range m.RedisReads[:i] {
			if before.Kind == r.Kind {
				return fmt.Sprintf("%s are declared twice", r.Kind.Name())
			}
		}
	}
	return ""
}

// pgReadsFault says what is wrong with m's postgres reads, or "".
func pgReadsFault(m *abi.Metadata) string {
	if len(m.PGReads) == 0 {
		return ""
	}
	if !slices.Contains(m.Capabilities, abi.CapabilityPostgres) {
		return "they need the postgres capability, which the plugin does not declare"
	}
	for i, r := range m.PGReads {
		switch {
		case r.Kind != abi.KindAlert && r.Kind != abi.KindAgentState:
			return fmt.Sprintf("kind %d is not one a postgres read serves (2, alerts, or 3, agent states)", r.Kind)
		case !m.Features.Has(r.Kind.Feature()):
			return fmt.Sprintf("%s are declared but the plugin does not advertise the feature %s", r.Kind.Name(), r.Kind.Feature())
		case r.SQL == "" || len(r.SQL) > maxPGReadSQL:
			return fmt.Sprintf("the statement of %s is %d bytes, not 1 to %d", r.Kind.Name(), len(r.SQL), maxPGReadSQL)
		}
		for _, before := range m.PGReads[:i] {
			if before.Kind == r.Kind {
				return fmt.Sprintf("%s are declared twice", r.Kind.Name())
			}
		}
	}
	return ""
}

func validPluginName(s string) bool {
	if s == "" || len(s) > maxMetadataName {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func validPluginVersion(s string) bool {
	if s == "" || len(s) > maxMetadataName {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' || c == '+') {
			return false
		}
	}
	return true
}
