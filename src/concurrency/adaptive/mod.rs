//! PLACEHOLDER until the adaptive branch lands: the interface the limiter calls.

#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub now_ns: u64,
    pub rtt_ns: u64,
    pub in_flight: u32,
    pub dropped: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdaptiveKind {
    Gradient,
    Aimd,
}

impl AdaptiveKind {
    pub fn name(&self) -> &'static str {
        match self {
            AdaptiveKind::Gradient => "gradient",
            AdaptiveKind::Aimd => "aimd",
        }
    }
    pub fn parse(text: &str) -> Result<Self, AdaptiveError> {
        match text {
            "gradient" => Ok(AdaptiveKind::Gradient),
            "aimd" => Ok(AdaptiveKind::Aimd),
            _ => Err(AdaptiveError(format!("unknown adaptive {text:?}"))),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdaptiveError(pub String);

impl std::fmt::Display for AdaptiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AdaptiveConfig {
    pub kind: AdaptiveKind,
    pub initial_limit: u32,
    pub min_limit: u32,
    pub max_limit: u32,
}

impl AdaptiveConfig {
    pub fn new(kind: AdaptiveKind) -> Self {
        AdaptiveConfig {
            kind,
            initial_limit: 20,
            min_limit: 1,
            max_limit: 1000,
        }
    }
    pub fn validate(&self) -> Result<(), AdaptiveError> {
        Ok(())
    }
}

#[derive(Clone, Debug)]
pub struct AdaptiveLimit {
    config: AdaptiveConfig,
    limit: u32,
}

impl AdaptiveLimit {
    pub fn new(config: AdaptiveConfig) -> Result<Self, AdaptiveError> {
        config.validate()?;
        Ok(AdaptiveLimit {
            limit: config.initial_limit,
            config,
        })
    }
    pub fn limit(&self) -> u32 {
        self.limit
    }
    pub fn on_sample(&mut self, sample: Sample) -> u32 {
        if sample.dropped {
            self.limit = (self.limit / 2).max(self.config.min_limit);
        } else if sample.in_flight * 2 >= self.limit {
            self.limit = (self.limit + 1).min(self.config.max_limit);
        }
        self.limit
    }
}
