//! CRC-32C, the checksum etcd's Hash and HashKV answer with.

/// CRC-32C (Castagnoli), reflected, as Go's hash/crc32 computes it.
pub struct Crc32c {
    table: [u32; 256],
    crc: u32,
}

impl Default for Crc32c {
    fn default() -> Self {
        Crc32c::new()
    }
}

impl Crc32c {
    pub fn new() -> Crc32c {
        const POLY: u32 = 0x82f6_3b78;
        let mut table = [0u32; 256];
        for (i, t) in table.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 { (c >> 1) ^ POLY } else { c >> 1 };
            }
            *t = c;
        }
        Crc32c { table, crc: !0 }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.crc = self.table[((self.crc ^ *b as u32) & 0xff) as usize] ^ (self.crc >> 8);
        }
    }

    pub fn finish(&self) -> u32 {
        !self.crc
    }
}

#[cfg(test)]
mod tests {
    use super::Crc32c;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // The catalogue check value of CRC-32C: the CRC of "123456789".
        let mut h = Crc32c::new();
        h.update(b"123456789");
        assert_eq!(h.finish(), 0xe306_9283);
    }
}
