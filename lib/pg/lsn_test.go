package pg

import "testing"

func TestParseLSN(t *testing.T) {
	tests := []struct {
		in      string
		want    LSN
		wantErr bool
	}{
		{in: "0/0", want: 0},
		{in: "0/3000148", want: 0x3000148},
		{in: "16/B374D848", want: 0x16_B374D848},
		{in: "16/b374d848", want: 0x16_B374D848},
		{in: "FFFFFFFF/FFFFFFFF", want: ^LSN(0)},
		{in: "00000001/00000002", want: 1<<32 | 2},
		{in: "", wantErr: true},
		{in: "0", wantErr: true},
		{in: "/1", wantErr: true},
		{in: "1/", wantErr: true},
		{in: "1/2/3", wantErr: true},
		{in: "G/0", wantErr: true},
		{in: "-1/0", wantErr: true},
		{in: "+1/0", wantErr: true},
		{in: " 0/1", wantErr: true},
		{in: "0/1 ", wantErr: true},
		{in: "100000000/0", wantErr: true},
		{in: "0/123456789", wantErr: true},
		{in: "0x1/0", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseLSN(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseLSN(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseLSN(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestLSNString(t *testing.T) {
	tests := []struct {
		in   LSN
		want string
	}{
		{0, "0/0"},
		{0x3000148, "0/3000148"},
		{0x16_B374D848, "16/B374D848"},
		{^LSN(0), "FFFFFFFF/FFFFFFFF"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("LSN(%#x).String() = %q, want %q", uint64(tt.in), got, tt.want)
		}
		if back, err := ParseLSN(tt.want); err != nil || back != tt.in {
			t.Errorf("ParseLSN(%q) = %v, %v; want %#x", tt.want, back, err, uint64(tt.in))
		}
	}
}
