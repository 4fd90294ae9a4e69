package config

// Config is one node's configuration in Patroni's schema. Field names follow
// the YAML keys; sections pg-ha does not act on are still accepted so that a
// Patroni file loads unchanged.
type Config struct {
	Scope     string `yaml:"scope"`
	Namespace string `yaml:"namespace"`
	Name      string `yaml:"name"`

	RestAPI   RestAPI        `yaml:"restapi"`
	Ctl       Ctl            `yaml:"ctl"`
	Etcd      *Etcd          `yaml:"etcd"`
	Etcd3     *Etcd          `yaml:"etcd3"`
	Bootstrap Bootstrap      `yaml:"bootstrap"`
	Postgres  Postgres       `yaml:"postgresql"`
	Tags      Tags           `yaml:"tags"`
	Watchdog  Watchdog       `yaml:"watchdog"`
	Log       map[string]any `yaml:"log"`

	// Accepted for compatibility; pg-ha uses etcd v3 only.
	Citus      map[string]any `yaml:"citus"`
	Raft       map[string]any `yaml:"raft"`
	Consul     map[string]any `yaml:"consul"`
	Zookeeper  map[string]any `yaml:"zookeeper"`
	Exhibitor  map[string]any `yaml:"exhibitor"`
	Kubernetes map[string]any `yaml:"kubernetes"`

	// Dynamic settings may also appear at the top level of a local file.
	DCSCore `yaml:",inline"`

	// File is the path the configuration was read from.
	File string `yaml:"-"`
}

// RestAPI is the restapi section: where pg-healthd listens and how it
// authenticates.
type RestAPI struct {
	Listen                  string            `yaml:"listen"`
	ConnectAddress          string            `yaml:"connect_address"`
	CertFile                string            `yaml:"certfile"`
	KeyFile                 string            `yaml:"keyfile"`
	KeyFilePassword         string            `yaml:"keyfile_password"`
	CAFile                  string            `yaml:"cafile"`
	Ciphers                 string            `yaml:"ciphers"`
	VerifyClient            string            `yaml:"verify_client"`
	Authentication          *BasicAuth        `yaml:"authentication"`
	HTTPExtraHeaders        map[string]string `yaml:"http_extra_headers"`
	HTTPSExtraHeaders       map[string]string `yaml:"https_extra_headers"`
	RequestQueueSize        int               `yaml:"request_queue_size"`
	Allowlist               []string          `yaml:"allowlist"`
	AllowlistIncludeMembers bool              `yaml:"allowlist_include_members"`
	// AuthReadEndpoints is a pg-ha extension: require authentication on the
	// GET endpoints that reveal configuration (/config, /cluster, /history).
	AuthReadEndpoints bool `yaml:"auth_read_endpoints"`
}

// BasicAuth is a username and password pair.
type BasicAuth struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// Ctl is patronictl's section; accepted, and used by pg-failover for TLS to
// the REST API when set.
type Ctl struct {
	Insecure        bool       `yaml:"insecure"`
	CertFile        string     `yaml:"certfile"`
	KeyFile         string     `yaml:"keyfile"`
	KeyFilePassword string     `yaml:"keyfile_password"`
	CACert          string     `yaml:"cacert"`
	Authentication  *BasicAuth `yaml:"authentication"`
}

// Etcd is the etcd or etcd3 section.
type Etcd struct {
	Host       string     `yaml:"host"`
	Hosts      StringList `yaml:"hosts"`
	URL        string     `yaml:"url"`
	URLs       StringList `yaml:"urls"`
	Proxy      string     `yaml:"proxy"`
	SRV        string     `yaml:"srv"`
	SRVSuffix  string     `yaml:"srv_suffix"`
	Protocol   string     `yaml:"protocol"`
	Username   string     `yaml:"username"`
	Password   string     `yaml:"password"`
	CACert     string     `yaml:"cacert"`
	Cert       string     `yaml:"cert"`
	Key        string     `yaml:"key"`
	KeyPass    string     `yaml:"key_password"`
	UseProxies bool       `yaml:"use_proxies"`
	Port       int        `yaml:"port"`
}

// Bootstrap is the bootstrap section, used once when the cluster is created.
type Bootstrap struct {
	DCS           DCS             `yaml:"dcs"`
	Method        string          `yaml:"method"`
	InitDB        InitDBOptions   `yaml:"initdb"`
	PgHBA         []string        `yaml:"pg_hba"`
	Users         map[string]User `yaml:"users"`
	PostInit      string          `yaml:"post_init"`
	PostBootstrap string          `yaml:"post_bootstrap"`
	// Custom is the bootstrap.<method> section when Method names one other
	// than initdb.
	Custom *Method `yaml:"-"`
}

// User is an entry of bootstrap.users.
type User struct {
	Password string   `yaml:"password"`
	Options  []string `yaml:"options"`
}

// DCS holds the dynamic settings written to the config key at bootstrap and
// read back from it afterwards.
type DCS struct {
	DCSCore  `yaml:",inline"`
	Postgres *DCSPostgres `yaml:"postgresql" json:"postgresql,omitempty"`
}

// DCSCore is the part of the dynamic settings that may also appear at the
// top level of a local file.
type DCSCore struct {
	TTL                   *Seconds         `yaml:"ttl" json:"ttl,omitempty"`
	LoopWait              *Seconds         `yaml:"loop_wait" json:"loop_wait,omitempty"`
	RetryTimeout          *Seconds         `yaml:"retry_timeout" json:"retry_timeout,omitempty"`
	MaximumLagOnFailover  *int64           `yaml:"maximum_lag_on_failover" json:"maximum_lag_on_failover,omitempty"`
	MaximumLagOnSyncnode  *int64           `yaml:"maximum_lag_on_syncnode" json:"maximum_lag_on_syncnode,omitempty"`
	MaxTimelinesHistory   *int             `yaml:"max_timelines_history" json:"max_timelines_history,omitempty"`
	PrimaryStartTimeout   *Seconds         `yaml:"primary_start_timeout" json:"primary_start_timeout,omitempty"`
	PrimaryStopTimeout    *Seconds         `yaml:"primary_stop_timeout" json:"primary_stop_timeout,omitempty"`
	PrimaryHangTimeout    *Seconds         `yaml:"primary_hang_timeout" json:"primary_hang_timeout,omitempty"`
	MasterStartTimeout    *Seconds         `yaml:"master_start_timeout" json:"master_start_timeout,omitempty"`
	MasterStopTimeout     *Seconds         `yaml:"master_stop_timeout" json:"master_stop_timeout,omitempty"`
	SynchronousMode       *SyncMode        `yaml:"synchronous_mode" json:"synchronous_mode,omitempty"`
	SynchronousModeStrict *bool            `yaml:"synchronous_mode_strict" json:"synchronous_mode_strict,omitempty"`
	SynchronousNodeCount  *int             `yaml:"synchronous_node_count" json:"synchronous_node_count,omitempty"`
	FailsafeMode          *bool            `yaml:"failsafe_mode" json:"failsafe_mode,omitempty"`
	CheckTimeline         *bool            `yaml:"check_timeline" json:"check_timeline,omitempty"`
	Pause                 *bool            `yaml:"pause" json:"pause,omitempty"`
	MemberSlotsTTL        *Seconds         `yaml:"member_slots_ttl" json:"member_slots_ttl,omitempty"`
	StandbyCluster        map[string]any   `yaml:"standby_cluster" json:"standby_cluster,omitempty"`
	Slots                 map[string]any   `yaml:"slots" json:"slots,omitempty"`
	IgnoreSlots           []map[string]any `yaml:"ignore_slots" json:"ignore_slots,omitempty"`
}

// DCSPostgres is the postgresql part of the dynamic settings.
type DCSPostgres struct {
	UsePgRewind  *bool          `yaml:"use_pg_rewind" json:"use_pg_rewind,omitempty"`
	UseSlots     *bool          `yaml:"use_slots" json:"use_slots,omitempty"`
	Parameters   Parameters     `yaml:"parameters" json:"parameters,omitempty"`
	PgHBA        []string       `yaml:"pg_hba" json:"pg_hba,omitempty"`
	PgIdent      []string       `yaml:"pg_ident" json:"pg_ident,omitempty"`
	RecoveryConf map[string]any `yaml:"recovery_conf" json:"recovery_conf,omitempty"`
	// RemoveDataOnRewindFail and RemoveDataOnDiverged may be set here too,
	// as Patroni allows; the local postgresql section wins.
	RemoveDataOnRewindFail *bool `yaml:"remove_data_directory_on_rewind_failure" json:"remove_data_directory_on_rewind_failure,omitempty"`
	RemoveDataOnDiverged   *bool `yaml:"remove_data_directory_on_diverged_timelines" json:"remove_data_directory_on_diverged_timelines,omitempty"`
}

// Postgres is the local postgresql section.
type Postgres struct {
	Listen                 string            `yaml:"listen"`
	ConnectAddress         string            `yaml:"connect_address"`
	ProxyAddress           string            `yaml:"proxy_address"`
	DataDir                string            `yaml:"data_dir"`
	ConfigDir              string            `yaml:"config_dir"`
	BinDir                 string            `yaml:"bin_dir"`
	BinName                map[string]string `yaml:"bin_name"`
	PgPass                 string            `yaml:"pgpass"`
	Authentication         Authentication    `yaml:"authentication"`
	Parameters             Parameters        `yaml:"parameters"`
	PgHBA                  []string          `yaml:"pg_hba"`
	PgIdent                []string          `yaml:"pg_ident"`
	PgCtlTimeout           *Seconds          `yaml:"pg_ctl_timeout"`
	UsePgRewind            *bool             `yaml:"use_pg_rewind"`
	UseUnixSocket          bool              `yaml:"use_unix_socket"`
	UseUnixSocketRepl      bool              `yaml:"use_unix_socket_repl"`
	RemoveDataOnRewindFail *bool             `yaml:"remove_data_directory_on_rewind_failure"`
	RemoveDataOnDiverged   *bool             `yaml:"remove_data_directory_on_diverged_timelines"`
	CreateReplicaMethods   []string          `yaml:"create_replica_methods"`
	Basebackup             any               `yaml:"basebackup"`
	Callbacks              map[string]string `yaml:"callbacks"`
	RecoveryConf           map[string]any    `yaml:"recovery_conf"`
	CustomConf             string            `yaml:"custom_conf"`
	Krbsrvname             string            `yaml:"krbsrvname"`
	PrePromote             string            `yaml:"pre_promote"`
	// Methods are the sections of the create_replica_methods other than
	// basebackup, by name.
	Methods    map[string]Method `yaml:"-"`
	BeforeStop string            `yaml:"before_stop"`
}

// Authentication holds the three roles pg-ha connects as.
type Authentication struct {
	Superuser   Credentials `yaml:"superuser"`
	Replication Credentials `yaml:"replication"`
	Rewind      Credentials `yaml:"rewind"`
}

// Credentials is a role name, its password and optional libpq TLS settings.
type Credentials struct {
	Username       string `yaml:"username"`
	Password       string `yaml:"password"`
	SSLMode        string `yaml:"sslmode"`
	SSLCert        string `yaml:"sslcert"`
	SSLKey         string `yaml:"sslkey"`
	SSLPassword    string `yaml:"sslpassword"`
	SSLRootCert    string `yaml:"sslrootcert"`
	SSLCRL         string `yaml:"sslcrl"`
	SSLCRLDir      string `yaml:"sslcrldir"`
	GSSEncMode     string `yaml:"gssencmode"`
	ChannelBinding string `yaml:"channel_binding"`
}

// Watchdog is the watchdog section. pg-ha fences with its own validity clock;
// the hardware watchdog settings are accepted and reported.
type Watchdog struct {
	Mode         string   `yaml:"mode"`
	Device       string   `yaml:"device"`
	SafetyMargin *Seconds `yaml:"safety_margin"`
	Driver       string   `yaml:"driver"`
}
