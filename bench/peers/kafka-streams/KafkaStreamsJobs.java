// The Kafka Streams peer of the runtime benchmark (bench/engines.ts starts it, bench/peers.ts
// builds it): Weir's two example jobs written the way a Kafka Streams user would, configured as
// Weir runs them (docs/architecture.md, "Benchmarks").
//
//   java -cp 'classes:libs/*' KafkaStreamsJobs <filter-enrich|clicks-per-user> <bootstrap>
//        <application id> <input topic> <output topic>
//
// Prints "ready" on stdout once the stream thread has its partitions (state RUNNING), and runs
// until it is signalled (a shutdown hook closes the streams) or fails (exit 1).
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.net.URI;
import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.regex.Pattern;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.Stores;

public class KafkaStreamsJobs {
  static final ObjectMapper JSON = new ObjectMapper();
  static final Pattern BOT = Pattern.compile("bot|crawler|spider", Pattern.CASE_INSENSITIVE);
  /** Weir's clicks-per-user: 60 s tumbling windows, 5 s out-of-orderness + 10 s lateness. */
  static final Duration WINDOW = Duration.ofSeconds(60);

  static final Duration GRACE = Duration.ofSeconds(15);

  public static void main(String[] args) throws Exception {
    if (args.length != 5) {
      System.err.println("usage: KafkaStreamsJobs <job> <bootstrap> <application id> <in> <out>");
      System.exit(2);
    }
    String job = args[0];
    String input = args[3];
    String output = args[4];
    StreamsBuilder builder = new StreamsBuilder();
    switch (job) {
      case "filter-enrich" -> filterEnrich(builder, input, output);
      case "clicks-per-user" -> clicksPerUser(builder, input, output);
      default -> {
        System.err.println("no job named " + job);
        System.exit(2);
      }
    }

    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[2]);
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
    // Weir's guarantee and interval: one transaction per task and second, offsets inside it.
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 1000);
    props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
    // One broker: internal topics (repartition, changelogs) with one replica.
    props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
    props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
    // Fetches of Weir's size (its TaskReader asks for 256 KB); read_committed comes with EOS.
    props.put(StreamsConfig.consumerPrefix(ConsumerConfig.FETCH_MAX_BYTES_CONFIG), 262_144);
    props.put(
        StreamsConfig.consumerPrefix(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG), 262_144);
    props.put(StreamsConfig.STATE_DIR_CONFIG, System.getProperty("java.io.tmpdir") + "/" + args[2]);

    KafkaStreams streams = new KafkaStreams(builder.build(), props);
    CountDownLatch stopped = new CountDownLatch(1);
    streams.setStateListener(
        (now, before) -> {
          if (now == KafkaStreams.State.RUNNING) {
            System.out.println("ready");
            System.out.flush();
          }
          if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING)
            stopped.countDown();
        });
    streams.setUncaughtExceptionHandler(
        e -> {
          e.printStackTrace();
          System.exit(1);
          return null;
        });
    Runtime.getRuntime()
        .addShutdownHook(new Thread(() -> streams.close(Duration.ofSeconds(10))));
    streams.start();
    stopped.await();
  }

  /** Drops malformed or bot events, adds `domain` (the URL's host): Weir's filter-enrich. */
  static void filterEnrich(StreamsBuilder builder, String input, String output) {
    builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
        .process(Enrich::new)
        .to(output, Produced.with(Serdes.String(), Serdes.String()));
  }

  /** Each kept event, enriched, keyed by its user (Weir's sink key). */
  static class Enrich implements Processor<String, String, String, String> {
    private ProcessorContext<String, String> context;

    @Override
    public void init(ProcessorContext<String, String> context) {
      this.context = context;
    }

    @Override
    public void process(Record<String, String> record) {
      ObjectNode event = enrich(record.value());
      if (event == null) return;
      try {
        context.forward(
            record.withKey(event.get("user").asText()).withValue(JSON.writeValueAsString(event)));
      } catch (Exception e) {
        throw new RuntimeException(e);
      }
    }
  }

  /** The event with its `domain`, or null when it is dropped (field order as Weir's). */
  static ObjectNode enrich(String value) {
    try {
      JsonNode event = JSON.readTree(value);
      if (!(event instanceof ObjectNode object)) return null;
      JsonNode user = object.get("user");
      JsonNode url = object.get("url");
      if (user == null || !user.isTextual() || user.asText().isEmpty()) return null;
      if (url == null || !url.isTextual()) return null;
      String host = host(url.asText());
      if (host == null) return null;
      JsonNode agent = object.get("agent");
      if (agent != null && agent.isTextual() && BOT.matcher(agent.asText()).find()) return null;
      object.put("domain", host);
      return object;
    } catch (Exception e) {
      return null;
    }
  }

  /** The host of an absolute URL, or null when it is none (Weir: URL.canParse, hostname). */
  static String host(String url) {
    try {
      URI uri = new URI(url);
      return uri.isAbsolute() && uri.getHost() != null ? uri.getHost() : null;
    } catch (Exception e) {
      return null;
    }
  }

  /**
   * Clicks per user per 60 s event-time window, each window emitted once, when it closes: keyed
   * by user (through a repartition topic, as Weir's keyBy), counted in an in-memory window store
   * (Weir keeps state on the heap) with its changelog, and held back by suppress() until stream
   * time passes the window's end plus the grace period.
   */
  static void clicksPerUser(StreamsBuilder builder, String input, String output) {
    builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
        // Parsed once: the user becomes the key, `ts` the record's timestamp (event time).
        .process(ClickKey::new)
        .groupByKey(Grouped.with("by-user", Serdes.String(), Serdes.String()))
        .windowedBy(TimeWindows.ofSizeAndGrace(WINDOW, GRACE))
        .count(
            Materialized.<String, Long>as(
                    Stores.inMemoryWindowStore(
                        "clicks-per-minute", WINDOW.plus(GRACE), WINDOW, false))
                .withKeySerde(Serdes.String())
                .withValueSerde(Serdes.Long()))
        .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))
        .toStream()
        .map(
            (window, count) -> {
              ObjectNode out = JSON.createObjectNode();
              out.put("user", window.key());
              out.put("start", window.window().start());
              out.put("end", window.window().end());
              out.put("clicks", count);
              try {
                return KeyValue.pair(window.key(), JSON.writeValueAsString(out));
              } catch (Exception e) {
                throw new RuntimeException(e);
              }
            })
        .to(output, Produced.with(Serdes.String(), Serdes.String()));
  }

  /** `{user, url, ts}` → key user, timestamp ts, the value as it came. */
  static class ClickKey implements Processor<String, String, String, String> {
    private ProcessorContext<String, String> context;

    @Override
    public void init(ProcessorContext<String, String> context) {
      this.context = context;
    }

    @Override
    public void process(Record<String, String> record) {
      try {
        JsonNode click = JSON.readTree(record.value());
        context.forward(
            record.withKey(click.get("user").asText()).withTimestamp(click.get("ts").asLong()));
      } catch (Exception e) {
        // A malformed click is dropped, as Weir's JSON source would fail it: none in the input.
      }
    }
  }
}
